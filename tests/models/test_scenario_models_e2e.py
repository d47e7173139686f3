"""HiNet, STAR and PEPNet train end to end: from the command line on the embedded dataset and
through the Python API on the Ali-CCP sample spec (1 epoch, tiny sizes)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from msmtrec.cli import main
from msmtrec.config import TrainConfig
from msmtrec.train.api import train

TINY = {
    "hinet": {"embed_dim": 4, "sub_experts": 2, "sub_expert_dims": [8, 8], "scenario_embed_dim": 4,
              "san_gate_dims": [8], "expert_dims": [8, 8], "tower_dims": [8]},
    "star": {"embed_dim": 4, "star_dims": [16, 8], "aux_dims": [8]},
    "pepnet": {"embed_dim": 4, "tower_dims": [16, 8]},
}
ALI_CCP = Path(__file__).resolve().parents[1] / "fixtures" / "ali_ccp.yaml"


def _flags(params: dict) -> list[str]:
    out = []
    for k, v in params.items():
        out += ["-p", f"{k}={v}".replace(" ", "")]
    return out


@pytest.mark.parametrize("name", sorted(TINY))
def test_trains_from_the_cli_on_the_embedded_dataset(name, tmp_path):
    res = CliRunner().invoke(main, ["train", "--model", name, "--epochs", "1", "--row-limit", "3000",
                                    "--runs-root", str(tmp_path), "-q", *_flags(TINY[name])], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "recommend AUC" in res.output and "| tops |" in res.output
    (run_dir,) = list(tmp_path.iterdir())
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "metrics.json").is_file()


@pytest.mark.parametrize("name, extra", [("hinet", {"task_layout": "scenario", "loss_on_all_heads": True}),
                                         ("star", {}), ("pepnet", {})])
def test_trains_on_the_ali_ccp_sample(name, extra):
    config = TrainConfig(model=name, data=str(ALI_CCP), model_params={**TINY[name], **extra}, batch_size=64,
                         max_epochs=1)
    result = train(config, write_run=False, progress=False)
    per_target = result.test["per_target"]
    assert set(per_target) == {"click", "purchase"}
    assert per_target["click"]["n"] > 0 and 0.0 <= per_target["click"]["logloss"] < 5.0
    assert result.fit.samples_per_second > 0
