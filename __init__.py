"""tapelab: a pure-TensorFlow lab that opens up what `model.fit` hides.

The folders of this repository install as its subpackages (setup.cfg's package_dir): `tapelab.core`,
`tapelab.train`, `tapelab.attacks`, `tapelab.realtime`, `tapelab.scripts`; the shipped models are package data
under `tapelab/models/`.
"""
