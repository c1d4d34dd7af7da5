"""``loopgate demo`` and ``loopgate serve --sandbox``: the whole loop against local fake
Salesforce, HubSpot and Slack services, with no credentials and no set-up."""
