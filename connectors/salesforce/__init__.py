"""Salesforce: incremental sync of leads, contacts, accounts, users, queues and opportunities;
batched write-back through sObject Collections."""

from connectors.salesforce.auth import SalesforceAuth, http_session
from connectors.salesforce.connector import SalesforceConnector

__all__ = ["SalesforceAuth", "SalesforceConnector", "http_session"]
