-- The line range of the staged batch, whose first occurrences the batch has just added to
-- elt.events with load_id $1: the next refresh reads them back as changed_events for the
-- models' delta queries.
insert into elt.unrefreshed_lines (load_id, first_line, last_line)
select $1, min(line_number), max(line_number)
from elt.staged_lines
having count(*) > 0
