"""The use cases (the application layer): each module's functions take the gateway context
and, where they change what is stored, a unit of work (`Store.transaction()`).

- submission: a case system's form -> a signed transmission, queued, in one unit of work
- reception: a peer's signed transmission -> stored, applied to its case, acknowledged
- delivery: the outcome of a delivery attempt (acknowledged, refused, failed, given up)
- cases: a message applied to its case (both ways); deadline_keeper: the legal time limits
  opened and closed as messages pass, and their expiry and reminders
- retention: payload erasure; audit: register verification, witnesses, CSV; bundles: signed
  offline register bundles; trust: the directory, CRL and own certificates, hot reloaded;
  health: opening sealed health certificates

transport/ (HTTP and TLS) and api/ call these; these call core/, xml/, pki/ and store/."""
