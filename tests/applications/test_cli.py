"""The argument groups every script shares: one list syntax, one validation, the same messages."""

import argparse

import pytest

from applications import cli


def _parser(several=True):
    parser = argparse.ArgumentParser(prog="script")
    cli.add_seeds_argument(parser, (0, 1))
    cli.add_model_data_arguments(parser, {"model": "mlp-2", "batch_size": 8})
    cli.add_optimizer_arguments(
        parser, {"optimizers": ("adam",), "optimizer": "adam"}, several=several
    )
    return parser


def _parse(argv, several=True):
    parser = _parser(several)
    args = parser.parse_args(argv)
    names = args.optimizers if several else [args.optimizer]
    cli.check_optimizer_flags(parser, args, names)
    return args


def _error(argv, capsys, several=True):
    with pytest.raises(SystemExit) as exit_info:
        _parse(argv, several)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "tokens",
    [
        ["adam,ladam,layer-ladam"],
        ["adam", "ladam", "layer-ladam"],
        ["adam,", "ladam", "layer-ladam"],
    ],
)
def test_lists_take_commas_spaces_or_both(tokens):
    assert _parse(["--optimizers", *tokens]).optimizers == ["adam", "ladam", "layer-ladam"]


def test_seeds_count_or_list():
    assert cli.seeds_of(_parse(["--seeds", "3"])) == [0, 1, 2]
    assert cli.seeds_of(_parse(["--seeds", "3,"])) == [3]
    assert cli.seeds_of(_parse(["--seeds", "3", "5"])) == [3, 5]
    assert cli.seeds_of(_parse(["--seeds", "4,2"])) == [4, 2]
    assert cli.seeds_of(_parse([])) == [0, 1]  # the default is a list


def test_seed_zero_alone_is_allowed():
    assert cli.parse(lambda defaults: _parser(), {}, {}, ["--seeds", "0"])[1].seeds == [0]
    assert cli.parse(lambda defaults: _parser(), {}, {}, ["--seeds", "0,"])[1].seeds == [0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizers", "adam,adamx"], "--optimizers: unknown optimizer(s) 'adamx'"),
        (["--optimizers", "adam", "adam"], "optimizers must be distinct"),
        (["--seeds", "1,x"], "--seeds: expected an integer >= 0, got 'x'"),
        (["--seeds", "0", "-2"], "--seeds: expected an integer >= 0, got '-2'"),
        (["--optimizers", ","], "--optimizers: expected at least one value"),
        (["--lr", "0"], "expected a positive number, got '0'"),
        (["--sigma", "nan", "--optimizers", "ladam"], "expected a number >= 0, got 'nan'"),
        (["--langevin-layers", "0", "--optimizers", "layer-ladam"], "must be in (0, 1]"),
        (["--epsilon", "-1"], "expected 'paper', 'keras' or a positive number"),
    ],
)
def test_bad_values_name_the_flag_and_the_value(argv, message, capsys):
    assert message in _error(argv, capsys)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--optimizers", "adam,sgd", "--sigma", "0.1"], "--sigma"),
        (["--optimizers", "adam", "--sigma-schedule", "constant"], "--sigma-schedule"),
        (["--optimizers", "rmsprop", "--noise", "rademacher"], "--noise"),
        (["--optimizers", "adam,ladam", "--langevin-layers", "0.5"], "--langevin-layers"),
        (["--optimizers", "sgd,lsgd", "--epsilon", "1e-8"], "--epsilon"),
    ],
)
def test_flags_no_chosen_optimizer_uses_are_refused(argv, flag, capsys):
    message = _error(argv, capsys)
    assert f"{flag} is used by only" in message and "not by" in message


def test_single_optimizer_flags_are_checked_the_same_way(capsys):
    assert "--sigma is used by only" in _error(
        ["--optimizer", "adam", "--sigma", "0.1"], capsys, several=False
    )
    args = _parse(["--optimizer", "layer-lsgd", "--langevin-layers", "all"], several=False)
    assert args.langevin_layers == "all" and args.epsilon is None


def test_used_flags_get_their_defaults_and_unused_ones_none():
    args = _parse(["--optimizers", "adam"])
    assert (args.sigma, args.sigma_schedule, args.noise, args.langevin_layers) == (None,) * 4
    assert args.epsilon == "paper"
    args = _parse(["--optimizers", "adam,layer-ladam"])
    assert (args.sigma_schedule, args.noise, args.langevin_layers) == ("log", "gaussian", 0.3)
    args = _parse(["--optimizers", "layer-ladam", "--langevin-layers", "conv_*,dense"])
    assert args.langevin_layers == ["conv_*", "dense"]


def test_help_describes_every_schedule_and_states_the_defaults(monkeypatch):
    from applications import optimizers

    monkeypatch.setenv("COLUMNS", "10000")  # no line breaks inside words
    text = " ".join(_parser().format_help().split())
    for name, description in {
        **optimizers.LR_SCHEDULE_DOCS,
        **optimizers.SIGMA_SCHEDULE_DOCS,
    }.items():
        assert f"'{name}': {' '.join(description.split())}" in text
    assert "(default: None)" not in text
    assert "or a number (default: paper)" in text


@pytest.mark.parametrize("epochs, refused", [(5, True), (16, True), (17, False)])
def test_a_cyclical_sigma_that_never_samples_is_a_usage_error(epochs, refused, capsys):
    argv = ["--optimizers", "lsgd", "--sigma-schedule", "cyclical", "--decay-epochs", "20"]
    parser = _parser()
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args([*argv, "--epochs", str(epochs)])
    if not refused:
        cli.check_optimizer_flags(parser, args, args.optimizers)
        return
    with pytest.raises(SystemExit) as exit_info:
        cli.check_optimizer_flags(parser, args, args.optimizers)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert f"--sigma-schedule cyclical --epochs {epochs} --decay-epochs 20.0:" in message
    assert "never turns the noise on" in message


def test_a_script_default_schedule_spans_its_epochs():
    from applications import train

    parser = train.build_parser()
    args = parser.parse_args([])
    cli.check_optimizer_flags(parser, args, [args.optimizer], train.DEFAULTS)
    assert (args.lr_schedule, args.sigma_schedule) == ("cosine", "cosine")
    assert args.decay_epochs == args.epochs == 10
    args = parser.parse_args(["--optimizer", "adam", "--epochs", "4"])
    cli.check_optimizer_flags(parser, args, [args.optimizer], train.DEFAULTS)
    assert (args.sigma_schedule, args.decay_epochs) == (None, 4)


def test_layer_names_parse_to_a_list():
    assert cli.langevin_layers("conv_*, dense") == ["conv_*", "dense"]
    assert cli.langevin_layers("ALL") == "all"
    assert cli.langevin_layers("0.25") == 0.25
