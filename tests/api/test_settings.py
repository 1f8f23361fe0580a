"""Every setting is documented, and flags / environment variables reach Settings."""

from pathlib import Path

import pytest

from api.cli import build_parser
from service.settings import env_name, settable_fields, settings_from_env

SETTINGS_PAGE = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()


@pytest.mark.parametrize("name", [f.name for f in settable_fields()])
def test_every_setting_is_documented_in_the_settings_page(name: str) -> None:
    assert f"`--{name.replace('_', '-')}`" in SETTINGS_PAGE


def test_environment_and_flags() -> None:
    settings = settings_from_env(
        {
            env_name("port"): "9001",
            env_name("allow_private_urls"): "yes",
            env_name("backbone"): "x",
        },
        backbone="tiny-clip",
    )
    assert settings.port == 9001 and settings.allow_private_urls is True
    assert settings.backbone == "tiny-clip"  # a flag wins over the environment
    with pytest.raises(ValueError, match="port"):
        settings_from_env({env_name("port"): "eighty"})
    args = build_parser().parse_args(["serve", "--port", "7000", "--no-allow-private-urls"])
    assert args.port == "7000" and args.allow_private_urls is False
