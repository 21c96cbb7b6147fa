# Stages 2-5: denoise -> align -> segment -> grains (one HDF5 artefact each, frame of slice 0).
# Thin rules: parameters are the config sections, all logic in magtwin.imaging / .reconstruct.


from magtwin.hpc.rules import image_resources


rule denoise:
    message: "denoise, destripe and normalise the slices of {wildcards.sample}"
    input:
        f"{RESULTS}/{{sample}}/01_ingest.h5",
    output:
        f"{RESULTS}/{{sample}}/02_denoise.h5",
    params:
        denoise=config["denoise"],
    resources:
        **image_resources(config["hpc"], input_key=0),
    log:
        f"{RESULTS}/logs/{{sample}}/02_denoise.log",
    conda:
        "../../envs/imaging.yaml"
    script:
        "../../scripts/denoise.py"


rule align:
    message: "correct the slice drift of {wildcards.sample}"
    input:
        f"{RESULTS}/{{sample}}/02_denoise.h5",
    output:
        f"{RESULTS}/{{sample}}/03_align.h5",
    params:
        align=config["align"],
    resources:
        **image_resources(config["hpc"], input_key=0),
    log:
        f"{RESULTS}/logs/{{sample}}/03_align.log",
    conda:
        "../../envs/imaging.yaml"
    script:
        "../../scripts/align.py"


rule segment:
    message: "segment the grain sections of every slice of {wildcards.sample}"
    input:
        f"{RESULTS}/{{sample}}/03_align.h5",
    output:
        f"{RESULTS}/{{sample}}/04_segment.h5",
    params:
        segment=config["segment"],
    threads: 4
    resources:
        **image_resources(config["hpc"], input_key=0),
    log:
        f"{RESULTS}/logs/{{sample}}/04_segment.log",
    conda:
        "../../envs/imaging.yaml"
    script:
        "../../scripts/segment.py"


rule grains:
    message: "link the grain sections of {wildcards.sample} into 3D grains"
    input:
        segment=f"{RESULTS}/{{sample}}/04_segment.h5",
        image=f"{RESULTS}/{{sample}}/03_align.h5",
    output:
        f"{RESULTS}/{{sample}}/05_grains.h5",
    params:
        grains=config["grains"],
    resources:
        **image_resources(config["hpc"], input_key=0),
    log:
        f"{RESULTS}/logs/{{sample}}/05_grains.log",
    conda:
        "../../envs/imaging.yaml"
    script:
        "../../scripts/grains.py"
