"""Training KeyDiff3D with Accelerate: configs, the loop, checkpoints.

Public API:
    load_config(name_or_path, overrides) -> TrainConfig         config.py (presets in presets/)
    train(config, resume=False, ...) -> TrainResult              trainer.py
    train_and_evaluate(config, ...) -> (TrainResult, EvalReport) pipeline.py
    load_model(path=None, device="cpu") -> (model, config, metadata)   checkpoint.py (None = shipped default)
    save_checkpoint(path, model, config, metadata)
"""
