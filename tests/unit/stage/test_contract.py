"""The stage's environment is an allow-list: contract variables, the stage's own env,
and a few harmless variables of the caller; never the caller's credentials."""

from __future__ import annotations

from pathlib import Path

from tycho.stage import contract


def env(base: dict[str, str], **kw: object) -> dict[str, str]:
    p = Path("/w")
    args: dict[str, object] = dict(inputs=p / "in", outputs=p / "out", params=p / "params.json", metrics=p / "m",
                                   stage="s", pipeline="p", run_id="r", env={"MODE": "fast"}, secret_env=[],
                                   imports_hook=p / "hook", imports=p / "imports", frameworks=p / "fw",
                                   checks=p / "checks")
    args.update(kw)
    return contract.child_env(base, **args)  # type: ignore[arg-type]


def test_only_allowed_variables_pass() -> None:
    base = {"PATH": "/usr/bin", "HOME": "/home/me", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "GITHUB_TOKEN": "t",
            "TYCHO_SIGNING_KEY": "/k", "KUBECONFIG": "/kc", "MY_API_KEY": "k", "CUDA_VISIBLE_DEVICES": "0"}
    out = env(base)
    assert out["MODE"] == "fast" and out["HOME"] == "/home/me" and out["CUDA_VISIBLE_DEVICES"] == "0"
    assert not {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "TYCHO_SIGNING_KEY", "KUBECONFIG", "MY_API_KEY"} & set(out)
    assert "s3cr3t" not in "".join(out.values())
    assert set(out) - set(contract.PASS_THROUGH) - {"MODE"} == {
        "TYCHO_INPUTS", "TYCHO_OUTPUTS", "TYCHO_PARAMS", "TYCHO_METRICS", "TYCHO_STAGE", "TYCHO_PIPELINE",
        "TYCHO_RUN_ID", "PYTHONHASHSEED", "TF_DETERMINISTIC_OPS", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
        "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH", "TYCHO_IMPORTS", "TYCHO_FRAMEWORKS", "TYCHO_CHECKS"}


def test_a_declared_secret_is_passed_by_name() -> None:
    out = env({"API_TOKEN": "t0k", "OTHER_TOKEN": "no"}, secret_env=["API_TOKEN"])
    assert out["API_TOKEN"] == "t0k" and "OTHER_TOKEN" not in out
