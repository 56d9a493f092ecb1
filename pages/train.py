"""Train: launch background trainings (or find them already done) and follow, cancel and resume them."""

from collections.abc import Callable

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from convnets.config import AUGMENTATIONS, MAX_SWEEP, NORMALIZATIONS, OPTIMIZERS, SCHEDULES, RunConfig, sweep
from convnets.data import check_data_dir
from convnets.datasets import dataset_names
from convnets.device import available_devices
from convnets.errors import ConvnetsError
from convnets.jobs import Job, JobManager
from convnets.models import default_recipe, get_model, models_for, net_name
from convnets.reporting import COPY_LABELS
from convnets.schema import ACTIVE, STOPPED, State
from dashboard import access, common, figures, live, study, training

STATE_COLOURS = {State.QUEUED: "gray", State.RUNNING: "blue", State.FINISHED: "green", State.FAILED: "red",
                 State.CANCELLED: "orange", State.INTERRUPTED: "orange", State.DAMAGED: "red"}
POLL_SECONDS = 1.0
# Labels unlike the form's own ("Epochs", "Batch size"), so that each names one input
SWEEP_INPUTS = (("lr", "Learning rates", "e.g. 0.1, 0.05"), ("epochs", "Epoch counts", "e.g. 10, 20"),
                ("batch_size", "Images per batch", "e.g. 64, 128"),
                ("weight_decay", "Weight decays", "e.g. 5e-4, 1e-4"))


def launch(config: RunConfig, device: str, data_dir: str) -> None:
    """Submit a job for exactly this configuration, or say where the finished run already is."""
    try:
        job = access.submit(config, device, data_dir)
    except ConvnetsError as e:
        st.error(str(e), icon=":material/error:")
        return
    if job.state == State.CACHED:
        st.success(f"This configuration was trained already ({job.run_id}): nothing to retrain.",
                   icon=":material/check_circle:")
        links = st.columns(3)
        for column, page in zip(links, ("errors", "curves", "leaderboard")):
            with column:
                common.link(page, run_id=job.run_id)
    else:
        st.toast(f"Training {net_name(job.config.model)} on {common.dataset_label(job.config.dataset)}: "
                 f"job {job.job_id} is {job.state}")


def launch_all(configs: list[RunConfig], device: str, data_dir: str) -> None:
    """Submit one job per configuration of a sweep; they train one after another in the queue."""
    trained, failed = 0, []
    for config in configs:
        try:
            trained += access.submit(config, device, data_dir).state == State.CACHED
        except ConvnetsError as e:
            failed.append(str(e))
    queued = len(configs) - trained - len(failed)
    st.success(f"Queued {common.plural(queued, 'job')}"
               + (f"; {common.plural(trained, 'configuration')} trained already" if trained else "") + ".",
               icon=":material/playlist_add_check:")
    for message in dict.fromkeys(failed):  # a full queue refuses the rest of a sweep alike: once is enough
        st.error(message, icon=":material/error:")


def job_card(manager: JobManager, job: Job) -> None:
    """One job: what it trains, its state, what can be done with it, and how far it got."""
    card = f"job_card_{job.job_id}"  # a class the browser tests find the card by
    if job.config is None:  # a job file that cannot be read: say so, and let it be removed
        with st.container(border=True, key=card):
            st.error(job.error, icon=":material/error:")
            job_actions(manager, job, st.container(horizontal=True))
        return
    recipe = job.config.recipe
    with st.container(border=True, key=card):
        head, actions = st.columns([3, 2], vertical_alignment="center")
        head.markdown(f"**{net_name(job.config.model)}** · {common.dataset_label(job.config.dataset)} · "
                      f"{common.plural(recipe.epochs, 'epoch')} · batch {recipe.batch_size} · lr {recipe.lr:g} &nbsp; "
                      f":{STATE_COLOURS.get(job.state, 'gray')}-badge[{job.state}]")
        head.caption(job.job_id)
        job_actions(manager, job, actions.container(horizontal=True, horizontal_alignment="right"))
        run = manager.run_of(job)
        if job.state in ACTIVE:
            st.progress(training.progress_fraction(job.progress), text=training.progress_text(job))
            history = run.history() if run is not None else []
            if history:
                st.plotly_chart(figures.training_curves([(net_name(job.config.model), history)], height=260),
                                key=f"curve-{job.job_id}")
            shots = live.snapshots_of(run) if run is not None else None
            if shots is not None:
                with st.expander("Live view: what the net sees now", expanded=True):
                    live.show(shots, len(shots) - 1)
        elif job.state == State.FINISHED:
            st.caption(f"Test accuracy {common.pct((run.evaluation() or {}).get('test_accuracy'))}")
        elif job.state == State.FAILED:
            st.error(job.error or "the job failed", icon=":material/error:")
        else:  # interrupted or cancelled
            st.warning(f"{job.error} — Resume continues from the last completed epoch.", icon=":material/pause:")
        if job.state != State.FINISHED:
            with st.expander("Log"):
                st.code(manager.log_tail(job.job_id, lines=40) or "(nothing logged yet)", language=None)


def job_actions(manager: JobManager, job: Job, bar: DeltaGenerator) -> None:
    """The buttons that fit the job's state, in the card's button bar; on a shared dashboard, the trainer's only."""
    trainer = access.is_trainer()
    if job.state in ACTIVE:
        if trainer and bar.button("Cancel", key=f"cancel-{job.job_id}", icon=":material/stop_circle:"):
            act(lambda: manager.cancel(job.job_id))
        return
    if trainer and job.state in STOPPED and bar.button("Resume", key=f"resume-{job.job_id}",
                                                       icon=":material/play_circle:"):
        act(lambda: access.submit(job.config, job.device, job.data_dir))  # continues from the last completed epoch
    if trainer and bar.button("Remove", key=f"forget-{job.job_id}", icon=":material/delete:",
                  help="Remove from this list; the run stays in the store"):
        act(lambda: manager.forget(job.job_id))
    if job.state == State.FINISHED:
        with bar:
            common.link("errors", label="Results", run_id=job.run_id)


def act(action: Callable[[], object]) -> None:
    """Run a job action, then redraw the whole page (the job list and whether it polls). The trainer's right is
    checked here again, on the server: a crafted widget event from a viewer changes nothing."""
    try:
        action()
    except ConvnetsError as e:
        st.error(str(e))
        return
    st.rerun()


def jobs_panel(polling: bool) -> None:
    """The live part of the page, rerun every second (as a fragment) while a job is queued or running."""
    manager = JobManager()
    jobs = manager.jobs()
    if polling != any(j.state in ACTIVE for j in jobs):
        st.rerun()  # a job started or ended: the full rerun turns polling on or off
    if not jobs:
        st.caption("No jobs yet.")
    for job in jobs:
        job_card(manager, job)


def jobs_section() -> None:
    """Every job's card, live while one is queued or running: what a viewer of a shared dashboard sees too."""
    st.subheader("Jobs")
    st.caption("Jobs run one at a time in the background and keep running when this tab or the server closes.")
    polling = any(j.state in ACTIVE for j in JobManager().jobs())
    st.fragment(run_every=POLL_SECONDS if polling else None)(jobs_panel)(polling)


st.title("Train")
if not access.is_trainer():  # a shared dashboard's viewer: what trains, without the controls
    st.info("This dashboard is shared: training, cancelling and removing jobs and changing the data folder need the "
            "trainer's sign-in (in the sidebar). Below: what trains now.", icon=":material/lock:")
    jobs_section()
    st.stop()
full = access.quota_problem()
if full:
    st.warning(full, icon=":material/hourglass_top:")
dataset_column, model_column = st.columns([1, 2])
choices = [*dataset_names(), training.YOUR_FOLDER]
preferred = common.dataset_filter() or choices[0]
dataset = dataset_column.selectbox(
    "Dataset", choices, index=choices.index(preferred) if preferred in choices else 0, key="train_dataset",
    format_func=lambda d: "Your folder…" if d == training.YOUR_FOLDER else common.dataset_label(d))
if dataset == training.YOUR_FOLDER:
    dataset = training.folder_picker()
    if dataset is None:
        st.stop()
specs = {spec.name: spec for spec in models_for(dataset)}
model = model_column.selectbox("Model", list(specs), format_func=lambda n: f"{n} — {specs[n].description}")
spec = get_model(model)
recipe = default_recipe(model, dataset)
published = [f"{who} {common.pct(accuracy[dataset])}" for who, accuracy in
             (("paper", spec.paper_accuracy), ("reference", spec.reference_accuracy)) if dataset in accuracy]
st.caption(" · ".join([spec.citation, f"{training.parameter_count(model, dataset):,} parameters", *published]))

try:  # before any job is launched: a job on a folder that cannot serve it would fail at once
    source, problem = check_data_dir(dataset, common.data_dir()), None
except ConvnetsError as e:
    source, problem = None, str(e)
if problem is not None:  # a warning: the page itself works, only training needs the data
    st.warning(f"No training until this is fixed: {problem}. Set the data folder in the sidebar.",
               icon=":material/folder_off:")
elif source.kind == "download":
    st.warning(f"{common.dataset_label(dataset)} is not in {common.data_dir()} (set the data folder in the "
               "sidebar); the job will download it there.", icon=":material/cloud_download:")
else:
    copy = "" if source.copy == "folder" else f"{COPY_LABELS[source.copy]} "  # a folder's label says so already
    st.caption(f"Data: {copy}{common.dataset_label(dataset)} from {source.path}")

with st.form("train"):
    key = f"{dataset}-{model}"  # a model change brings its own recipe's defaults
    columns = st.columns(5)
    epochs = columns[0].number_input("Epochs", min_value=1, value=recipe.epochs, key=f"epochs-{key}")
    batch_size = columns[1].number_input("Batch size", min_value=1, value=recipe.batch_size, key=f"batch-{key}")
    lr = columns[2].number_input("Learning rate (peak)", min_value=1e-6, value=recipe.lr, format="%g",
                                 step=recipe.lr / 10, key=f"lr-{key}")
    seed = columns[3].number_input("Seed", min_value=0, value=0, key=f"seed-{key}")
    device = columns[4].selectbox("Device", available_devices())
    defaults = (f"{recipe.optimizer}, {recipe.schedule} schedule, weight decay {recipe.weight_decay:g}, "
                f"label smoothing {recipe.label_smoothing:g}, augmentation {recipe.augment}, "
                f"normalisation {recipe.normalize}"
                f"{', test-time flips' if recipe.tta else ''}"
                f"{f', weight average {recipe.ema:g}' if recipe.ema else ''}"
                f"{f', batch norm rate ×{recipe.norm_lr:g}' if recipe.norm_lr != 1 else ''}")
    with st.expander(f"More of the recipe (default: {defaults})"):
        more = st.columns(5)
        optimizer = more[0].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(recipe.optimizer),
                                      key=f"optimizer-{key}")
        schedule = more[1].selectbox("Schedule", SCHEDULES, index=SCHEDULES.index(recipe.schedule),
                                     help="onecycle: linear warm-up, then linear decay to zero; onecycle-cos: "
                                     "PyTorch's OneCycleLR (cosine, momentum cycled); cosine: half a cosine to zero",
                                     key=f"schedule-{key}")
        weight_decay = more[2].number_input("Weight decay", min_value=0.0, value=recipe.weight_decay, format="%g",
                                            step=1e-4, key=f"wd-{key}")
        label_smoothing = more[3].number_input("Label smoothing", min_value=0.0, max_value=0.5,
                                               value=recipe.label_smoothing, step=0.05, key=f"ls-{key}")
        augment = more[4].selectbox("Augmentation", AUGMENTATIONS, index=AUGMENTATIONS.index(recipe.augment),
                                    help="crop-flip: random 4-pixel shifts and mirroring; flip: mirroring only; "
                                    "shift: 2-pixel shifts only (for digits)", key=f"augment-{key}")
        last = st.columns(5, vertical_alignment="bottom")
        ema = last[0].number_input("Weight average (EMA)", min_value=0.0, max_value=0.9999, value=recipe.ema,
                                   step=0.01, format="%g", key=f"ema-{key}",
                                   help="0: none. Otherwise the run is evaluated, predicts and is stored with a "
                                   "moving average of its weights, this decay per step (0.99: about the last "
                                   "hundred steps): ahead of the last weights while the learning rate is high, so "
                                   "short schedules reach a target sooner")
        norm_lr = last[1].number_input("Batch norm rate ×", min_value=0.001, max_value=1000.0, value=recipe.norm_lr,
                                       step=1.0, format="%g", key=f"normlr-{key}",
                                       help="Batch norm's scales and biases learn at this multiple of the learning "
                                       "rate, their weight decay divided by it (the same shrink per step). airbench "
                                       "trains its BN biases 64× faster; on ResNet-20's recipe ×4 and ×16 gained "
                                       "nothing (bench/README). 1: as the rest")
        tta = last[2].checkbox("Test-time flips", value=recipe.tta, key=f"tta-{key}",
                               help="Evaluate and predict on each image and its mirror, averaging the two: about "
                               "half a point on CIFAR-10 for twice the evaluation time; needs a mirrored "
                               "augmentation (crop-flip or flip)")
        normalize = last[3].selectbox("Normalisation", NORMALIZATIONS, index=NORMALIZATIONS.index(recipe.normalize),
                                      key=f"normalize-{key}",
                                      help="channel: each colour to mean 0, std 1; pixel: each pixel of each colour "
                                      "(the mean and std images); unit: pixels / 255; zca: channel, then a 5×5 "
                                      "whitening filter fit on the training images that decorrelates neighbouring "
                                      "pixels and colours, as the whitened CIFAR-10 of the All-CNN paper")
    with st.expander("Several seeds, or a small sweep"):
        st.caption(f"Each run is a job of its own in the queue (at most {MAX_SWEEP}). Seeds count up from the seed "
                   "above; a list below trains every combination of its values, each with every seed.")
        grid = st.columns(5)
        seeds = grid[0].number_input("Seeds", min_value=1, max_value=MAX_SWEEP, value=1, key=f"seeds-{key}",
                                     help="How many seeds of each recipe: the Leaderboard shows their mean ± std")
        texts = {name: grid[i].text_input(label, placeholder=example, key=f"sweep-{name}-{key}")
                 for i, (name, label, example) in enumerate(SWEEP_INPUTS, start=1)}
    if st.form_submit_button("Train", type="primary", icon=":material/play_arrow:", disabled=source is None):
        chosen = recipe.customised(
            epochs=int(epochs), batch_size=int(batch_size), lr=lr, optimizer=optimizer,
            schedule=schedule, weight_decay=weight_decay, label_smoothing=label_smoothing, augment=augment,
            tta=tta, ema=ema, norm_lr=norm_lr, normalize=normalize)
        base = RunConfig(model, dataset, chosen, seed=int(seed), data_copy=source.copy)
        try:
            configs = sweep(base, range(int(seed), int(seed) + int(seeds)), training.sweep_values(texts))
        except ConvnetsError as e:
            st.error(str(e), icon=":material/error:")
        else:
            if len(configs) == 1:
                launch(configs[0], device, common.data_dir())
            else:
                launch_all(configs, device, common.data_dir())

study.section(common.data_dir())
jobs_section()
