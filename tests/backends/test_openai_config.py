"""The OpenAI-compatible MLLM's settings model (openai_config) and the modules split out of
openai_compat: bad values name the setting, counts are clamped as before, header values never
show, and the modules' examples run."""

from __future__ import annotations

import doctest
import importlib

import pytest

from repainter.backends.mllm.openai_config import OpenAIConfig


@pytest.mark.parametrize(("params", "message"), [
    ({"json_mode": "xml"}, "openai: json_mode must be one of"),
    ({"iut_mode": "batch"}, "openai: iut_mode must be one of"),
    ({"token_param": "tokens"}, "openai: token_param must be one of"),
    ({"max_image_side": 8}, "openai: max_image_side must be at least 16"),
    ({"image_detail": "mid"}, "openai: image_detail must be one of"),
    ({"max_images": 0}, "openai: max_images must be at least 1"),
    ({"timeout": "soon"}, "openai: timeout: "),
    ({"max_imagez": 2}, "openai: max_imagez: "),
])
def test_a_bad_setting_is_a_value_error_naming_it(params, message):
    with pytest.raises(ValueError) as info:
        OpenAIConfig.checked({"model": "m", **params})
    assert str(info.value).startswith(message)


def test_counts_are_clamped_and_empty_mappings_normalised():
    config = OpenAIConfig.checked({"model": "m", "max_retries": -1, "reask": -2,
                                   "concurrency": 0, "max_reply_chars": 0, "prices": {},
                                   "extra_body": None, "default_query": None})
    assert (config.max_retries, config.reask, config.concurrency, config.max_reply_chars) == (
        0, 0, 1, 1)
    assert config.prices is None and config.extra_body == {} and config.default_query == {}
    assert config.endpoint == "api.openai.com"


def test_header_values_never_show_in_the_config():
    config = OpenAIConfig.checked({"model": "m", "default_headers": {"X-Key": "sk-secret-1"}})
    assert "sk-secret-1" not in repr(config) and "sk-secret-1" not in str(config)


@pytest.mark.parametrize("name", ["openai_config", "openai_usage", "openai_messages"])
def test_the_split_modules_examples_run(name):
    module = importlib.import_module(f"repainter.backends.mllm.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
