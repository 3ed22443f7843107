#!/bin/sh
# Pre-switch validation of the fixture: the generation must declare its checks.
grep -q '^\[validator\]' checks.toml
