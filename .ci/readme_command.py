"""Print the N-th ```sh block of README.md (1-based): CI runs README's commands verbatim."""

import re
import sys
from pathlib import Path

blocks = re.findall(r"^```sh\n(.*?)^```", Path("README.md").read_text(), re.M | re.S)
print(blocks[int(sys.argv[1]) - 1].strip())
