# Our scenarios for the shared real-Claude harness (mpm-aggregate tests/real-claude/scenarios.py).
#
# Not a module of its own: run-scenario.sh appends this file to a copy of ../shared/real-claude/scenario.py,
# so everything defined there (MAIN, MAIN_NOTIFY, SUB, T, TH, U, agent_call, bg_agent_call, task_ids,
# agent_outcomes, agent_reports, notified, results_digest, clean, BG_SLEEP, ...) is in scope here.
# The turns (prompts, -c/--resume, branch, custom agents) are in scenarios.sh.
# A scripted sub-agent step may return {"error": (http_status, error_type, message)}: the fake API then
# answers that request with that HTTP error.


def _first_result(c, n=80):
    return (results_digest(c, n) or ["?"])[0]


# ------------------------------------------------------------------ nest: nested + background sub-agents, task tools
MAIN.update({
    ("nest", 1): [
        lambda c: [TH("Plan the slugify work as tasks, delegate it to the lead (who delegates the code to the "
                      "engineer), and let qa look at the repository in the background."),
                   T("I'll track this as tasks."),
                   U("TaskCreate", {"subject": "Implement slugify", "description": "src/slug.py with slugify(text)",
                                    "activeForm": "Implementing slugify"}),
                   U("TaskCreate", {"subject": "Check the repository", "description": "qa looks at the repository",
                                    "activeForm": "Checking the repository"})],
        lambda c: [U("TaskUpdate", {"taskId": task_ids(c)[0], "status": "in_progress"}),
                   U("TaskUpdate", {"taskId": task_ids(c)[1], "status": "in_progress"}),
                   bg_agent_call(c, "qa", "Check repository (background)",
                                 "[sub:qa-nest] Look at the repository state and report; no rush."),
                   agent_call(c, "lead", "Lead the slugify work",
                              "[sub:lead-nest] Write a short plan to docs/slug-plan.md, then have the engineer "
                              "implement src/slug.py, and report back.")],
        lambda c: [U("TaskUpdate", {"taskId": task_ids(c)[0], "status": "completed"})],
        lambda c: [T("slugify is implemented; qa is still checking the repository in the background.\n"
                     + "\n".join("- " + r for r in agent_outcomes(c)))],
    ],
    ("nest", 2): [
        lambda c: [U("TaskList", {})],
        lambda c: [T("Task status: " + _first_result(c, 200))],
    ],
})

MAIN_NOTIFY.update({
    ("nest", 1): [
        lambda c: [U("TaskUpdate", {"taskId": task_ids(c)[1], "status": "completed"})],
        lambda c: [T("The background qa check finished: " + "; ".join(f"{s}: {o}" for s, o in notified(c)))],
    ],
})

SUB.update({
    "lead-nest": [
        lambda c: [T("Writing the plan."),
                   U("Write", {"file_path": "{cwd}/docs/slug-plan.md",
                               "content": "# slugify\n\n1. lower-case\n2. spaces to dashes\n"})],
        lambda c: [T("Delegating the implementation to the engineer."),
                   agent_call(c, "engineer", "Implement slugify",
                              "[sub:engineer-nest] Create src/slug.py with slugify(text), check it, and report.")],
        lambda c: [T("Lead report: plan in docs/slug-plan.md; engineer: " + "; ".join(agent_reports(c, 160)))],
    ],
    "engineer-nest": [
        lambda c: [T("Creating src/slug.py."),
                   U("Write", {"file_path": "{cwd}/src/slug.py",
                               "content": "def slugify(text):\n    return '-'.join(text.lower().split())\n"})],
        lambda c: [U("Bash", {"command": "python3 -c \"import sys; sys.path.insert(0, 'src'); import slug; "
                                         "print(slug.slugify('Hello Big World'))\"",
                              "description": "Check slugify"})],
        lambda c: [U("Bash", {"command": "python3 -c \"import sys; sys.path.insert(0, 'src'); import slug; "
                                         "slug.slugify(None)\"",
                              "description": "Check slugify rejects None (expected to fail)"})],
        lambda c: [T("Engineer report: src/slug.py implemented. Observed: " + " | ".join(results_digest(c, 60)))],
    ],
    "qa-nest": [
        lambda c: [T("Looking at the repository."),
                   U("Bash", {"command": f"sleep {BG_SLEEP}; git status --short",
                              "description": "Wait, then show the working tree status"})],
        lambda c: [U("Read", {"file_path": "{cwd}/README.md"})],
        lambda c: [T("QA report: repository checked, README present. Status: " + _first_result(c, 80))],
    ],
})

# ------------------------------------------------------------------ compact: failing Agent call, -c, /compact
MAIN.update({
    ("compact", 1): [
        lambda c: [TH("Two sub-agents in parallel: the engineer writes the files, qa reviews."),
                   T("Delegating to the engineer and qa in parallel."),
                   agent_call(c, "engineer", "Write changelog and version",
                              "[sub:engineer-cmp] Create CHANGELOG.md and src/version.py, check them, report back."),
                   agent_call(c, "qa", "Review the changelog",
                              "[sub:qa-cmp] Review the repository's history for the changelog and report back.")],
        lambda c: [T("Results:\n" + "\n".join("- " + r for r in agent_outcomes(c)))],
    ],
    ("compact", 3): [
        lambda c: [T("Reading the version file and the change notes."),
                   U("Read", {"file_path": "{cwd}/src/version.py"}),
                   U("Read", {"file_path": "{cwd}/CHANGES.md"})],
        lambda c: [U("Edit", {"file_path": "{cwd}/src/version.py",
                              "old_string": '__version__ = "0.1.0"', "new_string": '__version__ = "0.2.0"'})],
        lambda c: [T("Version bumped to 0.2.0. CHANGES.md does not exist; the notes are in CHANGELOG.md.")],
    ],
})

SUB.update({
    "engineer-cmp": [
        lambda c: [T("Writing the changelog."),
                   U("Write", {"file_path": "{cwd}/CHANGELOG.md", "content": "# Changelog\n\n## 0.1.0\n- first release\n"}),
                   U("Write", {"file_path": "{cwd}/src/version.py", "content": '__version__ = "0.1.0"\n'})],
        lambda c: [U("Bash", {"command": "grep -q 0.1.0 CHANGELOG.md && grep 0.1.0 src/version.py && exit 4",
                              "description": "Check both mention 0.1.0 (exits 4 on purpose)"})],
        lambda c: [T("Engineer report: CHANGELOG.md and src/version.py written. Observed: "
                     + " | ".join(results_digest(c, 60)))],
    ],
    "qa-cmp": [
        lambda c: [U("Bash", {"command": "git log --oneline -1", "description": "Show the last commit"})],
        lambda c: {"error": (400, "invalid_request_error", "scripted failure: qa's request is rejected")},
    ],
})
