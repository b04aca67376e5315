#!/usr/bin/env bash
# Print a <|cursor|> greeting.
echo hi
