"""`python -m app.sandbox`: the simulated Heroku on its own, for the e2e tests and demos."""

from app.sandbox.standalone import main

raise SystemExit(main())
