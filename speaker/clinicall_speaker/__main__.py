import sys

from clinicall_speaker import main

sys.exit(main())
