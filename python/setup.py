# Fallback for tools that call setup.py directly; all configuration is in pyproject.toml.
from setuptools import setup

setup()
