"""Training KeyDiff3D with Accelerate: configs, the loop, checkpoints.

Public API:
    load_config(name_or_path, overrides) -> TrainConfig         config.py (presets in presets/)
    train(config, resume=False, ...) -> TrainResult              trainer.py
    load_model(path=None, device="cpu") -> (model, config, metadata)   checkpoint.py (None = shipped default)
    save_checkpoint(path, model, config, metadata)
    PreviewItem, draw_preview, learned_bones, draw_curves        preview.py
Train-then-evaluate (`keydiff3d train`) is `keydiff3d.evaluation.protocol.train_and_evaluate`:
evaluation sits above training. Inference loads models with `KeyDiff3D.from_checkpoint` (model/).
"""
