"""A tenant's own data: the tables of its template and modules, mapped from its store
(records.py), their forms (forms.py) and the use cases that change a row, on the trail (changes.py)."""
