"""Modelling: datasets with train/valid/test segments, LightGBM training, metrics, prediction.

* :mod:`.presets` – named training presets (``qlib-lgb-alpha158``);
* :mod:`.dataset` – features → processed segment frames (processors fitted on train only);
* :mod:`.trainer` – LightGBM training fed exactly as Qlib's ``LGBModel`` feeds it;
* :mod:`.metrics` – daily cross-sectional IC / Rank IC, ICIR, MSE;
* :mod:`.predictor` – predictions from registered models with an LRU of loaded models;
* :mod:`.service` – the use cases: train_and_register, predict, model_signals, evaluate;
* :mod:`.qlib_form` – to and from Qlib's pandas (datetime, instrument) form;
* :mod:`.bars_source` – Qlib-style fields from any market data store;
* :mod:`.qlib_bridge` – a Qlib handler/dataset over our features (extra ``qlib``).

Importing this package loads nothing heavy (LightGBM and pandas are imported where used).
"""
