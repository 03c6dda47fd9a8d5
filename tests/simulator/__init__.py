"""Tests of the Graph simulator (bridge/simulator), driven through real msal and httpx."""
