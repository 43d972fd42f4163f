"""Build of the project's one C extension, ``mm_streamio`` (see mm_streamio.c for why).

Installed by scripts/bootstrap.sh and docker/Dockerfile (``pip install ./native``); the code
falls back to pure Python when it is missing (workers/host.py, ``_StreamSocket``)."""

from setuptools import Extension, setup

setup(
    name="mm-streamio",
    version="2.0.0",
    description="MarketMakerSuite: the bot hosts' Redis stream reader loop, without the GIL",
    ext_modules=[Extension("mm_streamio", ["mm_streamio.c"], extra_compile_args=["-O2", "-Wall"])],
)
