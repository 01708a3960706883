"""`--init` of the shared model arguments (`applications.cli`): it becomes the builders'
`init` model option, so that it is recorded with the run's model options."""

import argparse

import pytest

from applications import cli
from applications.models import build_model


def _parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_model_data_arguments(parser, {"model": "mlp-3"})
    return parser.parse_args(argv)


def test_init_flag_is_a_model_option_and_the_last_one_wins():
    assert _parse(["--init", "glorot", "--model-option", "width=3"]).model_options == [
        ("init", "glorot"),
        ("width", 3),
    ]
    options = _parse(["--model-option", "init=he", "--init", "orthogonal"]).model_options
    assert options == [("init", "orthogonal")]
    assert _parse([]).model_options == []
    model = build_model("mlp-3", (8, 8, 1), 10, **dict(_parse(["--init", "glorot"]).model_options))
    assert type(model.get_layer("dense1").kernel_initializer).__name__ == "GlorotUniform"


def test_bad_init_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as error:
        _parse(["--init", "lecun"])
    assert error.value.code == 2 and "invalid choice: 'lecun'" in capsys.readouterr().err
