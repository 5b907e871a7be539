"""Deadline sweepers of the reviews domain: none, so the app schedules no reviews job.

Reviews have one deadline, the edit window (``reviews.edit_until``, fixed when a review is
posted), and nothing happens when it passes: ``service.edit_review`` compares it with the time
of the edit and refuses a late one. There is nothing to sweep. The file stays because every
domain has the same files.
"""
