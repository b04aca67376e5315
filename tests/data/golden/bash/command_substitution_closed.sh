#!/bin/bash
main() {
  local x=1
  y=$(<PROPOSED>ls -l)</PROPOSED><EXPECTED>ls -l)</EXPECTED><REPLACED>)</REPLACED>
  echo done
}
