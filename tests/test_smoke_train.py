from pathlib import Path

from vae_lab.train import train


def test_train_writes_checkpoint_and_events(make_train_cfg) -> None:
    cfg = make_train_cfg()
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert -800 < metrics["val/elbo"] < 0
