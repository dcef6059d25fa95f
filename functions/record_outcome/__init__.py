"""RecordOutcome: write a run's final status and the message people are sent."""
