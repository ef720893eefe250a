"""The paper's evaluation protocol (regressors + MPJPE / N-MPJPE / P-MPJPE) and skeleton metrics.

Sits above training/ (it opens a TrainConfig's data and evaluates its runs); the preview images it
draws are training's (keydiff3d.training.preview).

Public API:
    evaluate_model(model, train_config, data_dir=None, ...) -> EvalReport    protocol.py
    train_and_evaluate(train_config, ...) -> (TrainResult, EvalReport)      (`keydiff3d train`)
    evaluate(model, train_data, test_data, ...), evaluate_predictions(train, test)
    mpjpe, n_mpjpe, p_mpjpe, procrustes_align, scale_align, cd_j2j, cd_j2b  metrics.py
    LinearRegressor, MLPRegressor                                           regressors.py
    load_rigged_asset, RiggedAsset (artist-rigged glTF creatures, bpy)      rigged_assets.py
    linear_blend_skinning, mean_vertex_error, posability, animation_fit      deformation.py
    blender_bone_heat (Blender's automatic weights as a reference, bpy)     bone_heat.py
"""
