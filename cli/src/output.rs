//! Human-readable output: aligned tables and compact units.

/// A table with a header row, rendered with columns padded to their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<const N: usize>(headers: [&str; N]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// A table whose column headers are known only at run time.
    pub fn with_headers(headers: Vec<String>) -> Table {
        Table {
            rows: vec![headers],
        }
    }

    /// Appends a row of any length.
    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Appends a row.
    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.to_vec());
    }

    /// The table as text, one line per row, columns separated by three spaces.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}   ", width = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// CPU in cores: `2`, `0.5`.
pub fn cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{:.1}", millis as f64 / 1000.0)
    }
}

/// Bytes in binary units: `23.4Gi`.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["", "Ki", "Mi", "Gi", "Ti"];
    let mut amount = value as f64;
    let mut unit = 0;
    while amount >= 1024.0 && unit + 1 < UNITS.len() {
        amount /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value}")
    } else {
        format!("{amount:.1}{}", UNITS[unit])
    }
}

/// An age in seconds as `3s ago`, `5m ago`, `2h ago`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// Prints a value as JSON or YAML (tables are printed by each command).
pub fn print_value<T: serde::Serialize>(format: crate::Format, value: &T) -> anyhow::Result<()> {
    match format {
        crate::Format::Yaml => print!("{}", serde_yaml::to_string(value)?),
        _ => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns() {
        let mut table = Table::new(["NAME", "STATUS"]);
        table.row(["node-0".into(), "Ready".into()]);
        table.row(["n".into(), "NotReady".into()]);
        assert_eq!(
            table.render(),
            "NAME     STATUS\nnode-0   Ready\nn        NotReady\n"
        );
    }

    #[test]
    fn formats_units() {
        assert_eq!(cpu(2000), "2");
        assert_eq!(cpu(1500), "1.5");
        assert_eq!(bytes(512), "512");
        assert_eq!(bytes(3 << 30), "3.0Gi");
        assert_eq!(age(4.7), "4s ago");
        assert_eq!(age(600.0), "10m ago");
    }
}
