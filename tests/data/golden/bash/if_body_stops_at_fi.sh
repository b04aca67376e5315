#!/bin/bash
if true; then
  <PROPOSED>echo a
fi
echo b</PROPOSED><EXPECTED>echo a</EXPECTED><MODE>multi</MODE>
fi
