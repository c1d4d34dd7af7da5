"""HubSpot: incremental sync of contacts, companies, owners and deals through the search API;
batched write-back through batch update."""

from connectors.hubspot.connector import HubSpotAuth, HubSpotConnector

__all__ = ["HubSpotAuth", "HubSpotConnector"]
