#!/usr/bin/env bash
# Prints the path of a Node 24 binary, installing it on first use (see scripts/node.sh).
exec "$(dirname "$0")/node.sh" 24
