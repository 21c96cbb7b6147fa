# Stages 6-7: convex-grain model (GB per grain pair, TJ regions) and its TetGen mesh, plus an
# off-screen picture of the model. Thin rules: all logic in magtwin.model / magtwin.mesh.

import re

# samples that bring their own tetrahedral mesh (samples.<name>.mesh) skip model and mesh
MESH_SAMPLES = [s for s, v in config["samples"].items() if v.get("mesh")]

ruleorder: import_mesh > mesh


# (input function model_labels in common.smk)


rule model:
    message: "fit convex grains and build the GB/TJ regions of {wildcards.sample}"
    input:
        labels=model_labels,
    output:
        f"{RESULTS}/{{sample}}/06_model.h5",
    params:
        model=config["model"],
    log:
        f"{RESULTS}/logs/{{sample}}/06_model.log",
    conda:
        "../../envs/model.yaml"
    script:
        "../../scripts/model.py"


rule mesh:
    message: "tetrahedral mesh (TetGen) of the model of {wildcards.sample}"
    input:
        f"{RESULTS}/{{sample}}/06_model.h5",
    output:
        mesh=f"{RESULTS}/{{sample}}/07_mesh.h5",
        xdmf=f"{RESULTS}/{{sample}}/07_mesh/mesh.xdmf",
        vtu=f"{RESULTS}/{{sample}}/07_mesh/mesh.vtu",
    params:
        mesh=config["mesh"],
    log:
        f"{RESULTS}/logs/{{sample}}/07_mesh.log",
    conda:
        "../../envs/model.yaml"
    script:
        "../../scripts/mesh.py"


rule import_mesh:
    message: "import the user's mesh of {wildcards.sample}"
    input:
        lambda wc: config["samples"][wc.sample]["mesh"],
    output:
        mesh=f"{RESULTS}/{{sample}}/07_mesh.h5",
    params:
        mesh_import=config["mesh_import"],
    wildcard_constraints:
        sample="|".join(re.escape(s) for s in MESH_SAMPLES) or "(?!)",
    log:
        f"{RESULTS}/logs/{{sample}}/07_mesh.log",
    conda:
        "../../envs/model.yaml"
    script:
        "../../scripts/import_mesh.py"


rule render_model:
    message: "picture of the grain model of {wildcards.sample}"
    input:
        f"{RESULTS}/{{sample}}/07_mesh.h5",
    output:
        f"{RESULTS}/{{sample}}/figures/model.png",
    log:
        f"{RESULTS}/logs/{{sample}}/render_model.log",
    conda:
        "../../envs/model.yaml"
    script:
        "../../scripts/render_model.py"
