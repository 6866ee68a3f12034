insert into elt.rejects (load_id, line_number, reason, detail, raw_line, line_length)
select $1, staged.line_number, staged.reject_reason, staged.reject_detail, staged.raw_line, staged.line_length
from elt.staged_lines as staged
where staged.reject_reason is not null
    and (not $4 or not exists (
        select 1
        from elt.loads as earlier_loads
        inner join elt.rejects as earlier_rejects
            on earlier_rejects.load_id = earlier_loads.load_id
            and earlier_rejects.line_number = staged.line_number
        where (earlier_loads.path = $2 or earlier_loads.content_hash = $3)
            and earlier_loads.load_id <> $1
            and earlier_rejects.raw_line = staged.raw_line
    ))
