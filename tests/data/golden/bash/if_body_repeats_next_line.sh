#!/bin/bash
if true; then
  <PROPOSED>echo a
  echo b</PROPOSED><EXPECTED>echo a</EXPECTED><MODE>multi</MODE>
  echo b
fi
