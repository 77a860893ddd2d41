"""The "Training runs" page: runs under the configured runs folder, loss curves, validation."""

from __future__ import annotations

from collections import defaultdict

from sarviz.ui.text import plain


def _validation_summary(table: list[dict]) -> list[dict]:
    """Mean of each metric over the val patches, per step and polarisation."""
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for r in table:
        groups[(r["step"], r["pol"])].append(r)
    out = []
    for (step, pol), rows in sorted(groups.items()):
        row = {"step": step, "pol": pol, "patches": len(rows)}
        for metric in ("ssim", "fsim", "kl", "mean_similarity", "std_similarity"):
            values = [r[metric] for r in rows if isinstance(r.get(metric), float)]
            row[metric] = round(sum(values) / len(values), 4) if values else None
        out.append(row)
    return out


def runs_page() -> None:
    import streamlit as st

    from sarviz.training import runs

    st.title("Training runs")
    root = runs.runs_root()
    st.caption(
        f"Runs of sarviz train geo\\|text \\-\\-out {plain(root)}/NAME (the folder is set by SARVIZ_RUNS). "
        "See docs/training.md."
    )
    from sarviz.access import inside_roots

    # a run folder symlinked to somewhere outside the allowed folders is not listed (sarviz.access)
    found = [r for r in runs.list_runs(root) if inside_roots(r.path) is not None]
    if not found:
        st.info(
            "No training runs yet. Train one with `sarviz train geo --data DATASET --base SD15_DIR "
            f"--out {root}/my-run`."
        )
        return
    st.dataframe(
        [
            {
                "run": str(r.path.relative_to(root)) if r.path != root else r.name,
                "kind": r.kind,
                "status": r.status,
                "step": r.step,
                "max steps": r.max_steps,
                "checkpoints": ", ".join(map(str, r.checkpoints)),
                "updated": r.updated,
            }
            for r in found
        ],
        hide_index=True,
        use_container_width=True,
    )
    labels = [str(r.path.relative_to(root)) if r.path != root else r.name for r in found]
    choice = st.selectbox("Run", labels, key="training-run")
    run = found[labels.index(choice)]
    if run.error:
        st.error(run.error)
    losses = runs.loss_table(run)
    st.subheader("Training loss")
    if losses:
        st.line_chart({"step": [r["step"] for r in losses], "loss": [r["loss"] for r in losses]}, x="step", y="loss")
        last = losses[-1]
        st.caption(
            f"step {last['step']}, loss {last['loss']:.4f}, lr {last['lr']:.2e}, {last['seconds_per_step']:.2f} s/step"
        )
    else:
        st.caption("No loss logged yet.")
    table = runs.validation_table(run)
    if run.kind == "geo":
        st.subheader("Validation (held-out patches)")
        if not table:
            st.caption("No validation yet (it runs every --validate-every steps and at the end).")
            return
        summary = _validation_summary(table)
        st.dataframe(summary, hide_index=True, use_container_width=True)
        for metric in ("ssim", "kl"):
            series = {pol: [r[metric] for r in summary if r["pol"] == pol] for pol in ("VV", "VH")}
            steps = sorted({r["step"] for r in summary})
            if len(steps) > 1:
                st.line_chart({"step": steps, **series}, x="step", y=["VV", "VH"])
                st.caption(f"{metric.upper()} by step (mean over the val patches)")
        images = runs.validation_images(run)
        if images:
            step = st.select_slider(
                "Validation step", options=list(images), value=list(images)[-1], key="training-val-step"
            )
            for png in (p for p in images[step] if inside_roots(p, kind="file") is not None):
                st.image(
                    str(png),
                    caption=f"{plain(png.stem)}: real VV | generated VV | real VH | generated VH",
                    use_container_width=True,
                )
