"""Field-name presets for CRM bulk upserts keyed by an external id.

A preset renames the current table's columns to the CRM's field names; the key becomes the
external-id field the upsert matches on. Salesforce custom fields end in ``__c`` (Bulk API 2.0
upsert with ``externalIdFieldName``); HubSpot custom contact properties are lowercase snake case
(batch upsert with ``idProperty``). Timestamps become ISO-8601 UTC text, booleans stay booleans.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["PRESETS", "crm_fields", "external_id"]

PRESETS: dict[str, dict[str, str]] = {
    "generic": {},
    "salesforce": {
        "entity_id": "Propensity_External_Id__c",
        "account_id": "Propensity_Account_Id__c",
        "score": "PQL_Score__c",
        "percentile": "PQL_Percentile__c",
        "is_pql": "Is_PQL__c",
        "status": "PQL_Status__c",
        "route": "PQL_Route__c",
        "holdout": "PQL_Holdout__c",
        "contacted": "PQL_Contacted__c",
        "reason_1": "PQL_Reason_1__c",
        "reason_2": "PQL_Reason_2__c",
        "reason_3": "PQL_Reason_3__c",
        "pql_since": "PQL_Since__c",
        "status_changed_at": "PQL_Status_Changed_At__c",
        "model_version": "PQL_Model_Version__c",
        "updated_at": "PQL_Updated_At__c",
    },
    "hubspot": {
        "entity_id": "propensity_external_id",
        "account_id": "propensity_account_id",
        "score": "pql_score",
        "percentile": "pql_percentile",
        "is_pql": "is_pql",
        "status": "pql_status",
        "route": "pql_route",
        "holdout": "pql_holdout",
        "contacted": "pql_contacted",
        "reason_1": "pql_reason_1",
        "reason_2": "pql_reason_2",
        "reason_3": "pql_reason_3",
        "pql_since": "pql_since",
        "status_changed_at": "pql_status_changed_at",
        "model_version": "pql_model_version",
        "updated_at": "pql_updated_at",
    },
}


def external_id(preset: str) -> str:
    """The field a bulk upsert matches on.

    >>> external_id("salesforce")
    'Propensity_External_Id__c'
    """
    return PRESETS[preset].get("entity_id", "entity_id")


def crm_fields(current: pd.DataFrame, preset: str) -> pd.DataFrame:
    """The current table with the preset's field names, only the fields it maps (all for
    ``generic``), timestamps as ISO-8601 text ending in ``Z``."""
    names = PRESETS[preset]
    frame = current[list(names)] if names else current
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            text = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            out[col] = text.where(out[col].notna(), None)
    return out.rename(columns=names)
