"""Code every service needs: event contracts, the alert model, settings, and small I/O helpers.

Nothing here imports a service.
"""
