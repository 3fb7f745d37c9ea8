"""Files for developer portals, generated from the code: TypeScript types of the values
(types/flotilla-values.d.ts) and a Backstage catalog entry (catalog-info.yaml) for the chart and
the gateway's API, whose definition is the gateway's OpenAPI document (docs/gateway-openapi.json).

    python -m flotilla.catalog          # rewrite the three files
    python -m flotilla.catalog --check  # exit 1 if any is stale (a test does the same)
"""
