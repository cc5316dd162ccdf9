//! Aggregate fusion: in an `and`, aggregates over the same values (same
//! function, property, events and window) that differ only in their
//! comparison are answered by one pass that applies every comparison, e.g.
//! `avg(x) of "E" >= 1 and avg(x) of "E" <= 2`.

use nudge_query_lang::{self as ql, Clause, ExprKind};

/// How an `and` child takes part in aggregate fusion.
pub(super) enum Fused<'e> {
    /// Evaluated on its own.
    Alone,
    /// The first of several aggregates over the same values: evaluates them all.
    Leads(Vec<&'e ql::Aggregate>),
    /// Evaluated with an earlier child.
    Follows,
}

/// Finds `and` children that aggregate the same values (same function,
/// property, events and window) and differ only in the comparison, like
/// `avg(x) of "E" >= 1 and avg(x) of "E" <= 2`: one pass answers them all.
pub(super) fn fuse_aggregates<'e>(order: &[&'e ql::Expr]) -> Vec<Fused<'e>> {
    fn subject(expr: &ql::Expr) -> Option<(&ql::Aggregate, String)> {
        match &expr.node {
            ExprKind::Clause(clause) => match &**clause {
                Clause::Aggregate(a) => Some((
                    a,
                    format!(
                        "{}({}) of {} {}",
                        a.function.node,
                        a.property.node,
                        a.filter,
                        a.window.as_ref().map(|w| w.node.to_string()).unwrap_or_default()
                    ),
                )),
                _ => None,
            },
            _ => None,
        }
    }
    let subjects: Vec<_> = order.iter().map(|&e| subject(e)).collect();
    let mut fused: Vec<Fused<'e>> = order.iter().map(|_| Fused::Alone).collect();
    for i in 0..order.len() {
        let (Some((first, key)), Fused::Alone) = (&subjects[i], &fused[i]) else { continue };
        let mut group = vec![&**first];
        for j in i + 1..order.len() {
            if let Some((other, other_key)) = &subjects[j]
                && other_key == key
            {
                group.push(&**other);
                fused[j] = Fused::Follows;
            }
        }
        if group.len() > 1 {
            fused[i] = Fused::Leads(group);
        }
    }
    fused
}
