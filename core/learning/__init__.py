"""Learning and governance (DESIGN §3 step 7): labels, trust levels, calibration, tuning.

Pure: values in, values out. Persistence is in ``core.store`` (``labels``, ``trust_state``,
``calibration``, ``policies``, ``replay``, ``tuning``); commands in ``loopgate.cli``.
"""
