-- Nothing refers to this table; the nodes' in-memory budgets take over again.
DROP TABLE secret_attempts;
