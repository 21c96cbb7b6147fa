# Stage 1: the sample's image stack (generated for synthetic samples) -> 01_ingest.h5
# (input functions in common.smk)


rule ingest:
    message: "ingest the image stack of {wildcards.sample}"
    input:
        stack=ingest_stack,
    output:
        f"{RESULTS}/{{sample}}/01_ingest.h5",
    params:
        voxel_size_nm=ingest_voxel,
        slice_thickness_nm=lambda w: config["samples"][w.sample].get("slice_thickness_nm"),
        crop_px=config["ingest"]["crop_px"],
    log:
        f"{RESULTS}/logs/{{sample}}/01_ingest.log",
    conda:
        "../../envs/base.yaml"
    script:
        "../../scripts/ingest.py"
