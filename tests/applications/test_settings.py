"""`applications.settings`: one place resolves every optimizer default; records keep the values."""

import json

import numpy as np
import pytest

from applications import engine, optimizers, settings


@pytest.mark.parametrize("name", optimizers.OPTIMIZERS)
def test_every_setting_the_optimizer_uses_is_filled(name):
    base, kind = optimizers.parse_name(name)
    chosen = settings.resolve(name)
    assert chosen.lr == optimizers.PAPER_LR[base]
    assert (chosen.lr_schedule, chosen.decay_epochs) == ("inverse-time", 20.0)
    assert chosen.epsilon == optimizers.PAPER_EPSILON.get(base)  # None: SGD, SGHMC
    langevin = kind != "plain"
    assert chosen.sigma == (optimizers.PAPER_SIGMA[base] if langevin else None)
    assert chosen.sigma_schedule == ("log" if langevin else None)
    assert chosen.noise == ("gaussian" if langevin else None)
    assert chosen.langevin_layers == (0.3 if kind == "layer" else None)
    assert chosen.exploration_fraction is None
    json.dumps(chosen.as_dict())  # a record's JSON form


def test_policies_resolve_to_numbers():
    assert settings.resolve("adam", epsilon="keras").epsilon == 1e-7
    assert settings.resolve("lrmsprop", epsilon="paper").epsilon == 1e-12
    assert settings.resolve("ladam", epsilon=1e-3).epsilon == 1e-3
    assert settings.resolve("layer-lsgd", langevin_layers=["conv_*"]).langevin_layers == ("conv_*",)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"lr": 0}, "Received: lr=0"),
        ({"epsilon": -1}, "Received: epsilon=-1"),
        ({"sigma": float("nan")}, "Received: sigma=nan"),
        ({"lr_schedule": "step"}, "`lr_schedule` must be one of"),
        ({"langevin_layers": 1.5}, "langevin_layers=1.5"),
        ({"exploration_fraction": 0.5}, "only with sigma_schedule='cyclical'"),
        ({"lr_schedule": "cosine"}, "give `epochs` or `decay_epochs`"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(given, message):
    with pytest.raises(settings.SettingsError, match=None) as error:
        settings.resolve("layer-ladam", **given)
    assert message in str(error.value)


def test_unused_settings_are_named():
    assert settings.unused(["adam", "sgd"], sigma=0.1, noise=None, epsilon=1e-8) == ["sigma"]
    assert settings.unused(["sgd", "lsgd"], epsilon=1e-8) == ["epsilon"]
    assert settings.unused(["ladam"], langevin_layers=0.5) == ["langevin_layers"]
    assert settings.unused(["layer-ladam", "adam"], sigma=0.1, langevin_layers=0.5) == []


def test_cosine_schedules_span_the_run_and_end_at_zero():
    chosen = settings.resolve(
        "layer-ladam", lr_schedule="cosine", sigma_schedule="cosine", epochs=10
    )
    assert chosen.decay_epochs == 10
    optimizer = chosen.build(steps_per_epoch=7, seed=0)
    lr, sigma = optimizer._learning_rate, optimizer._sigma
    assert float(lr(0)) == pytest.approx(5e-3) and float(sigma(0)) == pytest.approx(5e-3)
    assert float(lr(35)) == pytest.approx(2.5e-3) and float(sigma(35)) == pytest.approx(2.5e-3)
    assert float(lr(70)) == 0.0 and float(sigma(70)) == 0.0  # the end of the run
    last = 5e-3 * (1 + np.cos(np.pi * 69 / 70)) / 2  # the last step's, 5e-3 * 5.0e-4
    assert float(lr(69)) == pytest.approx(last, rel=1e-4)
    # the base optimizer of a comparison gets the same T as its Langevin form
    assert settings.resolve("adam", sigma_schedule="cosine", epochs=10).decay_epochs == 10
    assert settings.resolve("adam", lr_schedule="cosine", decay_epochs=4).decay_epochs == 4


@pytest.mark.parametrize("epochs, samples", [(16, False), (17, True), (5, False), (40, True)])
def test_a_cyclical_sigma_that_never_samples_is_refused(epochs, samples):
    # cycles of 20 epochs, noiseless for their first 80 %: the noise starts after epoch 16
    given = {"sigma_schedule": "cyclical", "decay_epochs": 20}
    steps_per_epoch = 3
    schedule = settings.resolve("lsgd", **given).build(steps_per_epoch)._sigma
    on = any(schedule.is_sampling(step) for step in range(epochs * steps_per_epoch))
    assert on == samples  # what the schedule really does
    if samples:
        assert settings.resolve("lsgd", epochs=epochs, **given).exploration_fraction == 0.8
    else:
        with pytest.raises(settings.SettingsError, match="never turns the noise on") as error:
            settings.resolve("lsgd", epochs=epochs, **given)
        assert set(error.value.keys) == {"sigma_schedule", "epochs", "decay_epochs"}
        assert f"in {epochs} epochs" in str(error.value) and "decay_epochs=20" in str(error.value)


def test_run_records_hold_the_resolved_values():
    record = engine.RunConfig(optimizer="layer-ladam").settings()
    assert record["lr"] == 5e-3 and record["sigma"] == 5e-3 and record["epsilon"] == 1e-6
    assert (record["lr_schedule"], record["sigma_schedule"]) == ("inverse-time", "log")
    assert (record["decay_epochs"], record["noise"], record["langevin_layers"]) == (
        20,
        "gaussian",
        0.3,
    )
    record = engine.RunConfig(optimizer="adam", sigma=0.1, langevin_layers=0.5).settings()
    assert (record["sigma"], record["langevin_layers"], record["noise"]) == (None, None, None)
    cyclical = engine.RunConfig(optimizer="lsgd", sigma_schedule="cyclical", epochs=30)
    assert cyclical.settings()["optimizer_options"] == [["exploration_fraction", 0.8]]
    # a config built from a record is the same run
    assert engine.RunConfig.resolve_settings(record, epochs=3) == record


def _backup(tmp_path, stored):
    backup = tmp_path / "backup"
    backup.mkdir(parents=True)
    (backup / "epoch-000002.weights.h5").write_bytes(b"")
    metadata = {"epoch": 2, "weights": "epoch-000002.weights.h5", "settings": stored}
    (backup / "training_metadata.json").write_text(json.dumps(metadata))
    return str(backup)


def test_backups_of_older_versions_resume_with_their_resolved_settings(tmp_path):
    config = engine.RunConfig(optimizer="layer-ladam", epochs=4)
    older = {  # what a backup made before the settings were resolved holds
        **config.settings(),
        "lr": None,
        "sigma": None,
        "epsilon": "paper",
        "decay_epochs": 20,
    }
    assert engine.resume_epoch(config, _backup(tmp_path, older)) == 2
    with pytest.raises(engine.SettingsMismatchError, match="different: lr"):
        engine.resume_epoch(config.replace(lr=1e-3), _backup(tmp_path / "x", older))


def test_make_optimizer_goes_through_resolve():
    optimizer = optimizers.make_optimizer("layer-lrmsprop", 10, sigma=0.2, rho=0.99, seed=4)
    assert (optimizer.rho, optimizer.epsilon, float(optimizer._sigma(0))) == (
        0.99,
        1e-12,
        pytest.approx(0.2),
    )
    assert np.isclose(float(optimizer._learning_rate(200)), 5e-3 / 2)
