# Stage 9: curve analysis over the sweep (summary table, fit to a measured curve) and figures.
# The sweep points come from config["sweep"] via magtwin.sweep.expand_sweep; the solver rule
# writes one 08_simulate/{point}.h5 per point.

# (SWEEP_POINTS comes from common.smk.)

FIGURES = ["curves", "hc_vs_parameters", "hc_angle", "fit"]
RENDER_POINT = config["analysis"]["render_point"] or next(iter(SWEEP_POINTS))
if RENDER_POINT not in SWEEP_POINTS:
    print(f"magtwin: invalid configuration: analysis.render_point: {RENDER_POINT!r} is not a sweep "
          f"point (points: {', '.join(SWEEP_POINTS)})", file=sys.stderr)
    raise SystemExit(1)
# Every file of stage 9 of a sample (for the top-level `all` rule).
ANALYSIS_TARGETS = [f"{RESULTS}/{{sample}}/09_analysis/summary.csv"] + [
    f"{RESULTS}/{{sample}}/09_analysis/figures/{name}.png"
    for name in FIGURES + ["grain_model", "reversal"]]


rule analyse:
    message: "analyse the demagnetisation curves of {wildcards.sample} ({params.n_points} sweep points)"
    input:
        curves=lambda w: [f"{RESULTS}/{w.sample}/08_simulate/{p}.h5" for p in SWEEP_POINTS],
        mesh=f"{RESULTS}/{{sample}}/07_mesh.h5",
        measured=lambda w: [config["samples"][w.sample]["measured_curve"]] if config["samples"][w.sample].get("measured_curve") else [],
    output:
        csv=report(f"{RESULTS}/{{sample}}/09_analysis/summary.csv",
                   caption="../report/summary.rst", category="Summary table",
                   labels={"sample": "{sample}", "table": "curve metrics"}),
        h5=f"{RESULTS}/{{sample}}/09_analysis/summary.h5",
    params:
        points=SWEEP_POINTS,
        n_points=len(SWEEP_POINTS),
        demag_factor=config["analysis"]["demag_factor"],
        measured_units=lambda w: config["samples"][w.sample].get("measured_units") or config["analysis"]["measured_units"],
        measured_demag_factor=float(config["analysis"]["measured_demag_factor"]),
        fit_grid_points=int(config["analysis"]["fit_grid_points"]),
        fit_min_coverage=float(config["analysis"]["fit_min_coverage"]),
    log:
        f"{RESULTS}/logs/{{sample}}/09_analyse.log",
    conda:
        "../../envs/base.yaml"
    script:
        "../../scripts/analyse.py"


rule figures:
    message: "figures and 3D renderings of {wildcards.sample}"
    input:
        summary=f"{RESULTS}/{{sample}}/09_analysis/summary.h5",
        mesh=f"{RESULTS}/{{sample}}/07_mesh.h5",
        render_curve=f"{RESULTS}/{{sample}}/08_simulate/{RENDER_POINT}.h5",
    output:
        curves=report(f"{RESULTS}/{{sample}}/09_analysis/figures/curves.png",
                      caption="../report/curves.rst", category="Demagnetisation curves",
                      labels={"sample": "{sample}", "figure": "curves of the sweep"}),
        hc_vs_parameters=report(f"{RESULTS}/{{sample}}/09_analysis/figures/hc_vs_parameters.png",
                                caption="../report/hc_vs_parameters.rst", category="Coercivity",
                                labels={"sample": "{sample}", "figure": "Hc vs swept parameters"}),
        hc_angle=report(f"{RESULTS}/{{sample}}/09_analysis/figures/hc_angle.png",
                        caption="../report/hc_angle.rst", category="Coercivity",
                        labels={"sample": "{sample}", "figure": "angular dependence of Hc"}),
        fit=report(f"{RESULTS}/{{sample}}/09_analysis/figures/fit.png",
                   caption="../report/fit.rst", category="Fit to the measured curve",
                   labels={"sample": "{sample}", "figure": "residuals"}),
        grain_model=report(f"{RESULTS}/{{sample}}/09_analysis/figures/grain_model.png",
                           caption="../report/grain_model.rst", category="3D model",
                           labels={"sample": "{sample}", "figure": "grain model"}),
        reversal=report(f"{RESULTS}/{{sample}}/09_analysis/figures/reversal.png",
                        caption="../report/reversal.rst", category="3D model",
                        labels={"sample": "{sample}", "figure": "reversal and nucleation"}),
        svg=expand(f"{RESULTS}/{{{{sample}}}}/09_analysis/figures/{{name}}.svg", name=FIGURES),
    params:
        render_snapshots=int(config["analysis"]["render_snapshots"]),
    log:
        f"{RESULTS}/logs/{{sample}}/09_figures.log",
    conda:
        "../../envs/base.yaml"
    script:
        "../../scripts/figures.py"
