"""The study's main loop: per depth, the tuning runs on the validation split, the choice of
each optimizer's learning rate, then the paired runs; progress kept in ``completed.json``
after every run, so that a killed study resumes where it stopped."""

from __future__ import annotations

import os
import time
from collections import defaultdict

import numpy as np

from applications import files
from applications.depth_study import plan as plan_lib
from applications.depth_study import results, runner, state
from applications.depth_study.main import (
    DIFFERENCES_PNG,
    RESULTS_MD,
    default_lr,
    initial_weights_path,
    run_config,
    sigma_of,
)
from applications.depth_study.plan import format_sigma, lr_source, study_kind


def _format_seconds(seconds):
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


class Progress:
    """Records finished runs in ``completed.json`` and prints them; enforces --stop-after."""

    def __init__(self, args, study_state, todo, path):
        self.args, self.state, self.path, self.todo = args, study_state, path, todo
        self.executed, self.seconds = [], []

    def __call__(self, spec, rows, extra, seconds):
        """Records a run; returns False once --stop-after is reached (None: just asks)."""
        if spec is not None:
            self._record(spec, rows, extra, seconds)
        return self.args.stop_after is None or len(self.executed) < self.args.stop_after

    def _record(self, spec, rows, extra, seconds):
        last = rows[-1]
        entry = {
            **{k: v for k, v in vars(spec).items()},
            "init": self.args.init,
            "final_val_accuracy": last["val_accuracy"],
            "final_val_loss": last["val_loss"],
            "seconds": round(seconds, 3),
            **extra,
        }
        section = "tuning" if isinstance(spec, plan_lib.TuneSpec) else "runs"
        self.state[section][spec.key] = entry
        files.write_json(self.path, self.state)
        self.executed.append(spec.key)
        self.seconds.append(seconds)
        left = self.todo - len(self.executed)
        eta = f", ~{_format_seconds(left * np.mean(self.seconds))} left" if left > 0 else ""
        print(
            f"[{len(self.executed)}/{self.todo}] {spec.label(self.args.family)}: "
            f"{'val' if section == 'tuning' else 'test'} acc {last['val_accuracy']:.4f}, "
            f"loss {last['loss']:.4f}, {seconds:.1f} s{eta}",
            flush=True,
        )

    def log_invocation(self, wall, interrupted=False):
        entry = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - wall)),
            "wall_seconds": round(wall, 3),
            "runs_executed": len(self.executed),
        }
        if interrupted:
            entry["interrupted"] = True
        self.state["invocations"].append(entry)
        files.write_json(self.path, self.state)


def lr_grid(args):
    """`name -> [learning rates]` tried in tuning (empty with --lr: nothing is tuned)."""
    if args.lr is not None:
        return lambda name: []
    return lambda name: [multiplier * default_lr(name) for multiplier in args.lr_grid]


def chosen_lrs(args, study_state, depth):
    """`name -> lr` chosen at `depth` from the finished tuning runs (highest mean final
    validation accuracy, then lowest mean validation loss); None while not all are done."""
    grid, chosen = lr_grid(args), {}
    seeds = args.seeds[: args.tune_seeds]
    for name in plan_lib.tunable(args.optimizers):
        scores = []
        for lr in grid(name):
            keys = [plan_lib.TuneSpec(depth, s, name, format_sigma(lr)).key for s in seeds]
            entries = [study_state["tuning"].get(key) for key in keys]
            if None in entries:
                return None
            accuracy = np.mean([e["final_val_accuracy"] for e in entries])
            loss = np.mean([e["final_val_loss"] for e in entries])
            scores.append((-accuracy, loss if np.isfinite(loss) else np.inf, lr))
        chosen[name] = min(scores)[2] if scores else args.lr or default_lr(name)
    return chosen


def _weights(args, depth, seeds):
    return {seed: initial_weights_path(args, depth, seed) for seed in seeds}


def _tune_depth(args, depth, study_state, record):
    tuning = plan_lib.plan_tuning(
        [depth], args.seeds[: args.tune_seeds], args.optimizers, lr_grid(args)
    )[depth]
    for name, lr, specs in tuning:
        pending = [s for s in specs if s.key not in study_state["tuning"]]
        if not pending:
            continue
        if not record(None, None, None, None):
            return False
        job = runner.job_for(args, run_config, name, depth, lr, validation=args.validation_fraction)
        initial = _weights(args, depth, {s.seed for s in pending})
        if not runner.run_specs(
            args.output, args.family, job, pending, initial, record, csv_rows=False
        ):
            return False
    return True


def _norms(study_state, depth, name):
    """`(depth, seed) -> norms` recorded by the Layer Langevin runs that `name` follows."""
    layer = plan_lib.layer_of(name)
    return {
        (entry["depth"], entry["seed"]): entry["norms"]
        for entry in study_state["runs"].values()
        if entry["optimizer"] == layer and entry["depth"] == depth and "norms" in entry
    }


def run_plan(args, plan, study_state, record):
    """Runs what is pending; returns whether --stop-after stopped it."""
    for depth, configs in plan:
        pending = [
            (c, [s for s in specs if s.key not in study_state["runs"]]) for c, specs in configs
        ]
        pending = [(c, specs) for c, specs in pending if specs]
        if not pending:
            continue
        if not _tune_depth(args, depth, study_state, record):
            return True
        lrs = chosen_lrs(args, study_state, depth)
        for (name, noise), specs in pending:
            if not record(None, None, None, None):
                return True
            noisy = plan_lib.is_langevin(name)
            job = runner.job_for(
                args,
                run_config,
                name,
                depth,
                lrs[lr_source(name)],
                sigma=float(noise) if noisy else None,
            )
            initial = _weights(args, depth, {s.seed for s in specs})
            norms = _norms(study_state, depth, name) if study_kind(name)[1] == "rescaled" else None
            if norms is not None:
                specs = [s for s in specs if (depth, s.seed) in norms]
            if specs and not runner.run_specs(
                args.output, args.family, job, specs, initial, record, norms=norms
            ):
                return True
    return False


def write_results(args, rows, study_state, planned, wall):
    keys = {spec.key for spec in planned}
    chosen = {}
    for depth in args.depths:
        for name, lr in (chosen_lrs(args, study_state, depth) or {}).items():
            if args.lr is None:
                chosen[(depth, name)] = lr
    layer = sigma_of(args)
    info = {
        "done": sum(1 for key in study_state["runs"] if key in keys),
        "planned": len(planned),
        "wall": wall,
        "total_wall": sum(item["wall_seconds"] for item in study_state["invocations"]),
        "lr_schedule": args.lr_schedule,
        "sigma_schedule": args.sigma_schedule or "log",
        "sigma_text": f"{args.sigma:g}" if args.sigma is not None else "the paper's (5e-3)",
        "langevin_layers": args.langevin_layers or 0.3,
        "epsilon": args.epsilon or "paper",
    }
    summary = results.summarize(rows, args, layer)
    paths = {
        "results": os.path.join(args.output, RESULTS_MD),
        "plot": os.path.join(args.output, DIFFERENCES_PNG),
    }
    files.write_text(paths["results"], results.results_markdown(summary, args, info, chosen))
    results.plot_differences(summary, args, paths["plot"])
    tuned = defaultdict(dict)
    for (depth, name), lr in chosen.items():
        tuned[str(depth)][name] = lr
    paths["tuned_lr"] = os.path.join(args.output, "tuned_lr.json")
    files.write_json(paths["tuned_lr"], {"init": args.init, "chosen": tuned})
    return paths, info


def run_study(args, started):
    study_state, _ = state.load_state(args.output, args.epochs)
    study_state.setdefault("tuning", {})
    plan = plan_lib.plan_runs(
        args.depths, args.seeds, args.optimizers, sigma_of(args), args.sigma_sweep
    )
    planned = plan_lib.planned_specs(plan)
    skipped = [spec.key for spec in planned if spec.key in study_state["runs"]]
    tuning = plan_lib.plan_tuning(
        args.depths, args.seeds[: args.tune_seeds], args.optimizers, lr_grid(args)
    )
    tune_todo = sum(
        1
        for d in tuning.values()
        for _, _, specs in d
        for s in specs
        if s.key not in study_state["tuning"]
    )
    todo = len(planned) - len(skipped) + tune_todo
    print(
        f"Depth study {args.family} on {args.dataset}: {len(planned)} runs planned, "
        f"{len(skipped)} already done, {todo} to run (tuning included); output {args.output}"
    )
    progress = Progress(args, study_state, todo, os.path.join(args.output, state.COMPLETED_JSON))
    try:
        stopped = run_plan(args, plan, study_state, progress)
    except BaseException:  # interrupted: keep the invocation's time in the record
        progress.log_invocation(time.perf_counter() - started, interrupted=True)
        raise
    wall = time.perf_counter() - started
    progress.log_invocation(wall)
    rows = state.read_csv(os.path.join(args.output, state.RUNS_CSV))
    paths, info = write_results(args, rows, study_state, planned, wall)
    if stopped:
        print(f"Stopped after {len(progress.executed)} run(s) (--stop-after); run it again")
    print(
        f"Done: {len(progress.executed)} run(s) in {_format_seconds(wall)}; "
        f"{info['done']}/{len(planned)} runs complete"
    )
    for name, path in paths.items():
        print(f"  {name:>10}: {path}")
    return {
        "paths": paths,
        "executed": progress.executed,
        "skipped": skipped,
        "planned": [spec.key for spec in planned],
        "wall_seconds": wall,
        "stopped": stopped,
    }
