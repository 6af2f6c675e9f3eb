"""The command line checked before Hydra starts: compose its overrides once, turn an unknown group option, an unknown
key or a malformed override into a sentence that says what to do, and validate every value (``wconv.plan``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import open_dict
from omegaconf.errors import OmegaConfBaseException

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
COMPOSE_ERRORS = (ConfigCompositionException, MissingConfigException, OverrideParseException, OmegaConfBaseException)
HYDRA_FLAGS = ("-m", "--multirun", "--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion")


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def explain(err: BaseException) -> str:
    """One line for a composition error."""
    text = str(err)
    if isinstance(err, MissingConfigException) and "Could not find" in text:
        quoted = [part for part in text.split("'")[1::2] if "/" in part]
        group = quoted[0].split("/")[0] if quoted else "the group"
        options = getattr(err, "options", None) or []
        listed = f"; choose one of {', '.join(options)}" if options else ""
        return f"{_first_line(err).removeprefix('In ' + repr('train') + ': ')}{listed} (see configs/{group}/)"
    if isinstance(err, OverrideParseException):
        return f"malformed override: {_first_line(err)}; write key=value, e.g. optim.lr=0.01 or density.den=[0.7]"
    cause = err.__cause__ or err
    if "not in struct" in str(cause) or "Could not override" in text or "Could not append" in text:
        key = text.split("'")[1] if "'" in text else "?"
        if f"full_key: {key}." in str(cause):  # Hydra merges a mapping into the one set before (a profile's)
            new_key = str(cause).split("'")[1]  # "Key '4' is not in struct"
            return (
                f"{key}: a mapping merges into the one set before it (a profile's or an experiment's), and "
                f"{new_key!r} is not in that one; to replace it write ~{key} +{key}={{...}}"
            )
        return (
            f"unknown key {key}: check the spelling against `python -m wconv.train --cfg job`, "
            f"or add a new key with +{key}=..."
        )
    return " ".join(_first_line(cause).split())


def check_overrides(argv: list[str]) -> tuple[str | None, Path | None]:
    """(the one-line error the overrides in ``argv`` cause when composed, or None; the run directory they give,
    or None when unknown). Multirun sweeps and Hydra's own flags are left to Hydra."""
    if any(a in HYDRA_FLAGS or a.startswith("--") for a in argv):
        return None, None
    from wconv.config import ConfigError
    from wconv.plan import make
    from wconv.runner import check_device

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose("train", overrides=argv, return_hydra_config=True)
            run_dir = Path(str(cfg.hydra.run.dir))
            with open_dict(cfg):
                del cfg["hydra"]
            check_device(make(cfg))  # every value (wconv.config, wconv.plan) and the device, before Hydra writes
    except COMPOSE_ERRORS as err:
        return explain(err), None
    except ConfigError as err:
        return " ".join(str(err).split()), None
    except Exception:  # anything else (a resolver Hydra alone provides): Hydra will say it
        return None, None
    finally:
        GlobalHydra.instance().clear()
    return None, run_dir


class OneLineParser(argparse.ArgumentParser):
    """argparse for the scripts: a bad argument is one line (``error: ...``) and exit status 2, not usage and error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")
