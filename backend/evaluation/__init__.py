"""The paper's evaluation protocol (regressors + MPJPE / N-MPJPE / P-MPJPE) and skeleton metrics.

Public API:
    evaluate_model(model, train_config, data_dir=None, ...) -> EvalReport    protocol.py
    evaluate(model, train_data, test_data, ...), evaluate_predictions(train, test)
    mpjpe, n_mpjpe, p_mpjpe, procrustes_align, scale_align, cd_j2j, cd_j2b  metrics.py
    LinearRegressor, MLPRegressor                                           regressors.py
    learned_bones, draw_preview, draw_curves                                 preview.py
"""
