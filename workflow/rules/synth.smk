# Stage 0: the synthetic FIB-SEM sample (the default sample and the reconstruction ground truth)
# for every sample with `synthetic: true`; parameters: the `synth` config section.

import re


rule synth:
    message: "generate the synthetic FIB-SEM sample {wildcards.sample}"
    output:
        stack=f"{RESULTS}/{{sample}}/00_synth/stack.tif",
        truth=f"{RESULTS}/{{sample}}/00_synth/truth.h5",
    params:
        synth=config["synth"],
    wildcard_constraints:
        sample="|".join(re.escape(s) for s in SYNTHETIC) or "(?!)",
    log:
        f"{RESULTS}/logs/{{sample}}/00_synth.log",
    conda:
        "../../envs/base.yaml"
    script:
        "../../scripts/synth.py"
