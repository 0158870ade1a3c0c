  # Our scenarios (mpm-aggregate tests/real-claude/scenarios.sh), inserted into run.sh's case by
  # run-scenario.sh; their scripted replies are in scenarios.py. Names: lowercase letters and digits.
  nest) # nested sub-agents, a background sub-agent, the default task tools (TaskCreate/TaskUpdate)
     TURNS=("new|[scenario-nest turn-1] Add a slugify helper in src/slug.py. Track the work as tasks: have the lead agent plan it and get it implemented, and let qa check the repository in the background."
            "resume|[scenario-nest turn-2] Which tasks are done?")
     BRANCH=feature/slug
     AGENTS=(engineer qa lead)
     EXTRA_ENV=() ;;
  compact) # a failing Agent call, a session continued with -c, a /compact (compaction's hidden sub-agent)
     TURNS=("new|[scenario-compact turn-1] Start a CHANGELOG.md and a src/version.py: the engineer writes them while qa reviews the changelog, in parallel."
            "continue|/compact"
            "continue|[scenario-compact turn-3] Bump the version in src/version.py to 0.2.0 and check CHANGES.md.")
     BRANCH=release/0.2
     AGENTS=(engineer qa)
     EXTRA_ENV=() ;;
