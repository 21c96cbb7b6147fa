# magtwin: FIB-SEM tomography stack of a Nd-Fe-B magnet -> finite-element digital twin ->
# demagnetisation curves. Thin rules in workflow/rules/, thin scripts in scripts/, the
# library in src/magtwin/. Run: `snakemake --profile profiles/local` (or ./run.sh pipeline).

configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    sample="[A-Za-z0-9_.-]+",


include: "workflow/rules/synth.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/imaging.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        expand(ANALYSIS_TARGETS, sample=SAMPLES),
        expand(f"{RESULTS}/{{sample}}/figures/model.png", sample=SAMPLES),
