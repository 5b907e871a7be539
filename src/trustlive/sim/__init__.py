"""The world simulator: the demo world (``demo``) now, simulated traffic and orders later.

Everything here acts through the domain services, as a real user of the platform would.
"""
