#!/usr/bin/env bash
if [ -z "$1" ]; then
  <|cursor|>
fi
