"""Deadline sweepers of the content domain: none, so the app schedules no content job.

Videos have no deadlines: a video is published when posted and stays as it is until its creator
or ops change it, each change applied when it is made. Files of deleted videos are removed when
the deletion commits (``service.delete_video``), not by a sweeper. The file stays because every
domain has the same files.
"""
