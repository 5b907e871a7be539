"""Deadline sweepers of the social domain: none, so the app schedules no social job.

Follows have no deadline, and the follower counts need no repair pass: each follow or unfollow
moves its target's count by one in the same transaction as the follow row (see
``repository.add_followers``), so the count cannot drift from the rows. The file stays because
every domain has the same files.
"""
